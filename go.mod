module github.com/hvguest/hvguest

go 1.26
